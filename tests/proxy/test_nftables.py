"""nftables mode: ``numgen random mod N`` and which node addresses answer a NodePort.

pkg/proxy/nftables and KEP-3866: nftables picks endpoint i with probability 1/N and
answers NodePorts only on the node's primary address (never on 127.0.0.1); iptables
answers on every local address including localhost (``--iptables-localhost-nodeports``
default true); IPVS binds every local address except loopback (2.2).
"""

from __future__ import annotations

import numpy as np
import pytest

from npsim.proxy import MODES, IpvsProxy, NftablesProxy
from npsim.proxy.iptables import UniformTable

from .helpers import chi_square_uniform, client, endpoints, node, run_frame, scenario, service_port

ALPHA = 1e-3


def test_numgen_pick_is_uniform() -> None:
    n, samples = 5, 50_000
    proxy = NftablesProxy(node(), np.random.default_rng(3))
    sp = service_port(endpoints=endpoints(n))
    proxy.program(sp, sp.endpoints)
    table = proxy.tables[sp.index]
    assert isinstance(table, UniformTable)
    counts = np.bincount([table.pick(0, 0, 0.0) for _ in range(samples)], minlength=n)
    assert chi_square_uniform(counts) > ALPHA
    se = np.sqrt(0.2 * 0.8 / samples)
    assert np.all(np.abs(counts / samples - 0.2) < 5 * se)


def test_run_under_nftables_is_uniform_over_pods() -> None:
    scn = scenario(mode="nftables", nodes=3, replicas=6, requests=6000,
                   clients=[client(rate="3000/s")])
    out, frame = run_frame(scn)
    assert {p.mode for p in out.proxies} == {"nftables"}
    assert (frame["outcome"] == "completed").all()
    counts = frame["pod"].value_counts().to_numpy()
    assert len(counts) == 6
    assert chi_square_uniform(counts) > ALPHA


def _address_run(mode: str, address: str, requests: int = 200):  # noqa: ANN202
    scn = scenario(mode=mode, nodes=2, replicas=2, requests=requests,
                   clients=[client(entry={"node": "node-1", "address": address})])
    return run_frame(scn)[1]


def test_localhost_nodeport_refused_under_nftables() -> None:
    frame = _address_run("nftables", "localhost")
    assert len(frame) == 200
    assert (frame["outcome"] == "failed").all()
    assert (frame["reason"] == "nodeport_closed").all()
    assert frame["pod"].isna().all()  # refused before any endpoint is chosen
    assert (frame["entry_node"] == "node-1").all()


def test_localhost_nodeport_answers_under_iptables() -> None:
    frame = _address_run("iptables", "localhost")
    assert (frame["outcome"] == "completed").all()
    assert frame["pod"].notna().all()


def test_localhost_nodeport_refused_under_ipvs() -> None:
    frame = _address_run("ipvs", "localhost")
    assert (frame["outcome"] == "failed").all()
    assert (frame["reason"] == "nodeport_closed").all()


@pytest.mark.parametrize(("mode", "answers"), [("iptables", True), ("nftables", False),
                                               ("ipvs", True)])
def test_secondary_address(mode: str, answers: bool) -> None:
    frame = _address_run(mode, "secondary", requests=50)
    if answers:
        assert (frame["outcome"] == "completed").all()
    else:
        assert (frame["reason"] == "nodeport_closed").all()


def test_accepts_by_mode() -> None:
    n = node()
    rng = np.random.default_rng(0)
    expected = {
        "iptables": {"primary", "secondary", "localhost"},
        "nftables": {"primary"},
        "ipvs": {"primary", "secondary"},
        "userspace": {"primary", "secondary", "localhost"},
    }
    for mode, cls in MODES.items():
        proxy = IpvsProxy(n, rng) if cls is IpvsProxy else cls(n, rng)
        got = {a for a in ("primary", "secondary", "localhost") if proxy.accepts(a)}
        assert got == expected[mode], mode


def test_mixed_modes_per_node_localhost() -> None:
    # a cluster half-way through a migration: node-1 runs nftables, node-2 iptables
    scn = scenario(mode="iptables", replicas=2, requests=200,
                   nodes=[{"name": "node-1", "proxyMode": "nftables"}, {"name": "node-2"}],
                   clients=[client("on-1", entry={"node": "node-1", "address": "localhost"}),
                            client("on-2", entry={"node": "node-2", "address": "localhost"})])
    out, frame = run_frame(scn)
    assert [p.mode for p in out.proxies] == ["nftables", "iptables"]
    on1 = frame[frame["population"] == "on-1"]
    on2 = frame[frame["population"] == "on-2"]
    assert len(on1) > 0 and len(on2) > 0
    assert (on1["reason"] == "nodeport_closed").all()
    assert (on2["outcome"] == "completed").all()
