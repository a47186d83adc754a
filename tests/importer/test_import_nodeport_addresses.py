"""``npsim import`` carries the kube-proxy ConfigMap's ``nodePortAddresses`` into
``cluster.kubeProxy.nodePortAddresses`` as kube-proxy reads it for the IPv4 family
(pkg/proxy/util/nodeport_addresses.go NewNodePortAddresses)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from npsim.cli import main
from npsim.importer import import_cluster
from npsim.scenario.loader import load_scenario

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "cluster.yaml"
LINE = "nodePortAddresses: [192.168.10.0/24]"


def _dump(tmp_path: Path, line: str) -> Path:
    text = FIXTURE.read_text()
    assert LINE in text
    path = tmp_path / "dump.yaml"
    path.write_text(text.replace(LINE, line))
    return path


def test_the_configmap_s_list_becomes_the_scenario_key(tmp_path: Path) -> None:
    out = tmp_path / "shop.yaml"
    import_cluster([FIXTURE], out)
    text = out.read_text()
    assert "kubeProxy: {minSyncPeriod: 2s, nodePortAddresses: [192.168.10.0/24]}" in text
    assert "no scenario key" not in text
    cluster = load_scenario(out).spec.cluster
    assert cluster.kube_proxy.node_port_addresses == ["192.168.10.0/24"]


@pytest.mark.parametrize(("line", "expected"), [
    # the IPv6 CIDR belongs to kube-proxy's other family and is left out
    ('nodePortAddresses: [192.168.10.0/24, "2001:db8::/64"]', ["192.168.10.0/24"]),
    # no IPv4 CIDR: the IPv4 family matches all (0.0.0.0/0), not the mode's default
    ('nodePortAddresses: ["2001:db8::/64"]', ["0.0.0.0/0"]),
    ("nodePortAddresses: [primary]", ["primary"]),
    ("nodePortAddresses: []", None),
])
def test_families_and_primary(tmp_path: Path, line: str, expected: list[str] | None) -> None:
    out = tmp_path / "s.yaml"
    import_cluster([_dump(tmp_path, line)], out)
    assert load_scenario(out).spec.cluster.kube_proxy.node_port_addresses == expected
    if expected is None:
        assert "# nodePortAddresses not set: the mode's default" in out.read_text()


@pytest.mark.parametrize(("line", "message"), [
    ("nodePortAddresses: [primary, 10.0.0.0/8]",
     "nodePortAddresses[0]: Invalid value: \"primary\": can't use both 'primary' and CIDRs"),
    ("nodePortAddresses: [10.0.0.0/40]",
     "nodePortAddresses[0]: Invalid value: '10.0.0.0/40': must be a valid CIDR"),
])
def test_a_list_kube_proxy_refuses_is_a_located_problem(tmp_path: Path, line: str,
                                                         message: str) -> None:
    target = tmp_path / "s.yaml"
    result = CliRunner().invoke(main, ["import", str(_dump(tmp_path, line)), "--out",
                                       str(target)])
    assert result.exit_code == 2 and "nothing was written" in result.output
    assert f"dump.yaml:299:3: data.config.conf: {message}" in result.output, result.output
    assert not target.exists()
