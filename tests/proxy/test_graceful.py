"""Endpoint categories and removed endpoints, as kube-proxy handles them.

* serving-terminating endpoints are a fallback only (KEP-1669, pkg/proxy/topology.go
  CategorizeEndpoints): Cluster policy when no endpoint is ready anywhere, Local per node;
* IPVS graceful termination (pkg/proxy/ipvs graceful_termination.go): a removed TCP real
  server with connections stays with weight 0, rechecked by the node's one 60 s ticker
  (``wait.Until(tryDeleteRs, rsCheckDeleteInterval)``), deleted when its counters are 0;
  UDP and idle ones are deleted at once; ``ipvsadm`` shows the weight-0 rows.
"""

from __future__ import annotations

import numpy as np

from npsim.cluster.model import ServicePortModel
from npsim.proxy import IptablesProxy
from npsim.proxy.ipvs import IpvsProxy, IpvsTable
from npsim.proxy.rules.ipvs import ipvsadm

from .helpers import endpoints, node, service_port

FIN = 120.0


def _local(sp: ServicePortModel) -> ServicePortModel:
    sp.service.external_traffic_policy = "Local"
    return sp


def test_cluster_uses_terminating_endpoints_only_when_none_is_ready() -> None:
    eps = endpoints(3)
    sp = service_port(endpoints=eps)
    proxy = IptablesProxy(node(), np.random.default_rng(1))
    proxy.program(sp, (), 0.0, None, terminating=(eps[1],))
    view = proxy.views[sp.index]
    assert view.any and view.external.keys == [eps[1].key]
    proxy.program(sp, (eps[0],), 0.0, None, terminating=(eps[1], eps[2]))
    assert proxy.views[sp.index].external.keys == [eps[0].key]
    proxy.program(sp, (), 0.0, None, terminating=())
    assert not proxy.views[sp.index].any


def test_local_falls_back_per_node() -> None:
    here = endpoints(2)  # node 0
    there = tuple(e.__class__(pod=9, node=1, ip=e.ip + 100, port=80) for e in here[:1])
    sp = _local(service_port(endpoints=here + there))
    proxy = IptablesProxy(node(0), np.random.default_rng(1))
    # a ready endpoint elsewhere does not stop this node from using its terminating one
    proxy.program(sp, there, 0.0, None, terminating=(here[0],))
    assert proxy.views[sp.index].external.keys == [here[0].key]
    assert proxy.views[sp.index].local_ready == 0  # the health check answers 503 (fact 23)
    # a ready local endpoint wins over a terminating local one
    proxy.program(sp, (here[1],) + there, 0.0, None, terminating=(here[0],))
    assert proxy.views[sp.index].external.keys == [here[1].key]
    assert proxy.views[sp.index].local_ready == 1


def _ipvs(protocol: str = "TCP") -> tuple[IpvsProxy, ServicePortModel, IpvsTable]:
    sp = service_port(protocol=protocol, endpoints=endpoints(3))
    proxy = IpvsProxy(node(), np.random.default_rng(3), "rr", FIN)
    proxy.program(sp, sp.endpoints, 0.0)
    table = proxy.tables[sp.index]
    assert isinstance(table, IpvsTable)
    return proxy, sp, table


def test_removed_real_server_with_connections_drains_at_weight_zero() -> None:
    proxy, sp, table = _ipvs()
    gone = sp.endpoints[0].key
    table.opened(gone, 1.0)
    proxy.program(sp, sp.endpoints[1:], 10.0)
    table = proxy.tables[sp.index]
    # the ticker's origin is 0 here: its ticks are 60, 120, 180 s, not 60 s per server
    assert table.weight(gone) == 0 and table.graceful == {gone: 60.0}
    assert gone not in table.keys
    assert {table.keys[table.pick(0, 0, 11.0 + i)] for i in range(20)} == {
        e.key for e in sp.endpoints[1:]}  # no new connection goes there
    table.closed(gone, 20.0)  # the last connection ends: inactive until 140 s
    for now in (60.0, 120.0):
        table.pick(0, 0, now)
        assert gone in table.graceful  # rechecks at 60 s and 120 s find it in use
    table.pick(0, 0, 200.0)
    assert table.deleted == [(180.0, gone)]  # the tick at 180 s deletes it
    assert gone not in table.active


def test_one_recheck_ticker_for_every_real_server_of_a_node() -> None:
    """Two servers removed 25 s apart are rechecked on the same ticks (origin 7 s:
    67, 127 s), where a timer per server would have come at 70 s and 95 s."""
    sp = service_port(endpoints=endpoints(3))
    proxy = IpvsProxy(node(), np.random.default_rng(3), "rr", FIN)
    proxy.recheck_origin = 7.0
    proxy.program(sp, sp.endpoints, 0.0)
    table = proxy.tables[sp.index]
    a, b = sp.endpoints[0].key, sp.endpoints[1].key
    table.opened(a, 1.0)
    table.opened(b, 1.0)
    proxy.program(sp, sp.endpoints[1:], 10.0)
    proxy.program(sp, sp.endpoints[2:], 35.0)
    assert table.graceful == {a: 67.0, b: 67.0}
    table.closed(a, 40.0)
    table.closed(b, 50.0)  # inactive until 160 s and 170 s (FIN 120 s)
    table.pick(0, 0, 200.0)
    assert table.deleted == [(187.0, a), (187.0, b)]  # both at the tick after 170 s


def test_idle_or_udp_real_servers_are_deleted_at_once_and_a_returning_one_is_kept() -> None:
    proxy, sp, table = _ipvs()
    proxy.program(sp, sp.endpoints[1:], 5.0)
    assert proxy.tables[sp.index].deleted == [(5.0, sp.endpoints[0].key)]
    proxy, sp, table = _ipvs("UDP")
    table.opened(sp.endpoints[0].key, 1.0)
    proxy.program(sp, sp.endpoints[1:], 5.0)
    assert proxy.tables[sp.index].deleted == [(5.0, sp.endpoints[0].key)]
    # TCP: removed with a connection, back before the recheck: in service, counters kept
    proxy, sp, table = _ipvs()
    key = sp.endpoints[0].key
    table.opened(key, 1.0)
    proxy.program(sp, sp.endpoints[1:], 5.0)
    proxy.program(sp, sp.endpoints, 30.0)
    assert table.weight(key) == 1 and table.active[key] == 1 and not table.deleted


def _real_servers(text: str, virtual: str) -> list[str]:
    """The real-server rows under one virtual server of ``ipvsadm -Ln``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if virtual in line and "->" not in line)
    rows = []
    for line in lines[start + 1:]:
        if "->" not in line:
            break
        rows.append(line)
    return rows


def test_ipvsadm_shows_the_weight_zero_row(tmp_path) -> None:  # noqa: ANN001
    from npsim.cluster.model import Cluster

    proxy, sp, table = _ipvs()
    gone = sp.endpoints[0].key
    table.opened(gone, 1.0)
    proxy.program(sp, sp.endpoints[1:], 10.0)
    cluster = Cluster([proxy.node], [], [sp], None, None, None, None)  # type: ignore[arg-type]
    proxy.scheduler = "rr"
    rows = _real_servers(ipvsadm(proxy, cluster), "172.18.0.2:30080")
    assert len(rows) == 3
    weights = {r.split()[1]: (r.split()[3], r.split()[4]) for r in rows}
    assert weights[gone] == ("0", "1")
    assert {w for k, w in weights.items() if k != gone} == {("1", "0")}


def test_explain_at_a_time_shows_a_draining_real_server(tmp_path) -> None:  # noqa: ANN001
    import yaml
    from click.testing import CliRunner

    from npsim.cli import main

    from .helpers import client, scale, scenario_dict

    data = scenario_dict(mode="ipvs", replicas=3, duration="30s",
                         events=[scale("5s", 2)],
                         clients=[client(rate="100/s", rpc=1000, source_ips=30,
                                         entry={"node": "node-1"})])
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(data))
    before = CliRunner().invoke(main, ["explain", str(path)])
    after = CliRunner().invoke(main, ["explain", str(path), "--at", "10s"])
    assert before.exit_code == 0 and after.exit_code == 0, after.output
    rows = lambda out: [r.split() for r in _real_servers(out, "172.18.0.2:30080")]  # noqa: E731
    assert [r[3] for r in rows(before.output)] == ["1", "1", "1"]
    weights = sorted(r[3] for r in rows(after.output))
    assert weights == ["0", "1", "1"]
    draining = next(r for r in rows(after.output) if r[3] == "0")
    assert int(draining[4]) + int(draining[5]) > 0  # it still has connections
    assert "at 10s" in after.output.splitlines()[0]  # the header says when the rules hold
    bad = CliRunner().invoke(main, ["explain", str(path), "--at", "ten"])
    assert bad.exit_code == 2 and "--at 'ten'" in bad.output
    late = CliRunner().invoke(main, ["explain", str(path), "--at", "999s"])
    assert late.exit_code == 2 and "after the end of the run (30s" in late.output
    typo = CliRunner().invoke(main, ["explain", str(path), "--at", "20s", "--node", "nope"])
    assert typo.exit_code == 2 and "--node 'nope'" in typo.output
    start = CliRunner().invoke(main, ["explain", str(path), "--at", "0s"])  # the rules as built
    assert start.exit_code == 0, start.output
    assert rows(start.output) == rows(before.output) and "at 0s" in start.output
