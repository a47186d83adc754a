"""``cluster.kubeProxy.nodePortAddresses`` and a node's ``secondaryAddress`` in the
scenario: kube-proxy's own validation (validateKubeProxyNodePortAddress) placed at the
file, line and field, exit 2, nothing run."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from npsim.cli import main
from npsim.scenario.loader import load_scenario

NGINX = Path(__file__).resolve().parents[2] / "scenarios" / "manifests" / "nginx.yaml"

SCENARIO = """\
name: npa
cluster:
  proxyMode: nftables
  kubeProxy:
    nodePortAddresses: {addresses}
  nodes:
    - {{name: node-1, address: 192.168.1.11{secondary}}}
    - {{name: node-2, address: 192.168.1.12}}
manifests: [nginx.yaml]
workloads:
  nginx: {{serviceTime: {{dist: constant, value: 1ms}}, placement: spread}}
clients:
  - {{name: users, service: nginx-nodeport, arrival: {{rate: 100/s}}}}
run: {{duration: 1s}}
"""


def write(folder: Path, addresses: str, secondary: str = "") -> Path:
    (folder / "nginx.yaml").write_text(NGINX.read_text("utf-8"), "utf-8")
    path = folder / "scenario.yaml"
    path.write_text(SCENARIO.format(addresses=addresses, secondary=secondary), "utf-8")
    return path


@pytest.mark.parametrize(("addresses", "message"), [
    ("[192.168.1.0/33]", "[0]: Invalid value: '192.168.1.0/33': must be a valid CIDR"),
    ("[10.0.0.0/8, not-a-cidr]", "[1]: Invalid value: 'not-a-cidr': must be a valid CIDR"),
    ("[10.0.0.1]", "must be a valid CIDR: write the prefix length (e.g. 10.0.0.1/32)"),
    ("[primary, 10.0.0.0/8]", "[0]: Invalid value: \"primary\": can't use both 'primary' "
                              "and CIDRs"),
    ("[10.0.0.0/8, primary]", "[1]: Invalid value: \"primary\": can't use both"),
    ('[10.0.0.0/8, "fd00::/64"]', "[1]: Invalid value: 'fd00::/64': npsim clusters are "
                                  "IPv4 only"),
    ("{a: 1}", "Input should be a valid list"),
])
def test_bad_lists_are_placed_and_refused(tmp_path: Path, addresses: str,
                                          message: str) -> None:
    path = write(tmp_path, addresses)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "scenario.yaml:5:5: cluster.kubeProxy.nodePortAddresses: " in result.output
    assert message in result.output


def test_the_flag_form_and_primary_are_read(tmp_path: Path) -> None:
    """``--nodeport-addresses`` takes a comma-separated string; the key takes it too."""
    spec = load_scenario(write(tmp_path, "192.168.1.0/24, 127.0.0.0/8")).spec
    assert spec.cluster.kube_proxy.node_port_addresses == ["192.168.1.0/24", "127.0.0.0/8"]
    spec = load_scenario(write(tmp_path, "primary")).spec
    assert spec.cluster.kube_proxy.node_port_addresses == ["primary"]


def test_unset_is_none_so_the_mode_default_applies(tmp_path: Path) -> None:
    path = write(tmp_path, "[]")
    path.write_text(path.read_text().replace("  kubeProxy:\n    nodePortAddresses: []\n", ""))
    assert load_scenario(path).spec.cluster.kube_proxy.node_port_addresses is None


def test_secondary_address_is_an_ipv4_address_other_than_the_node_s(tmp_path: Path) -> None:
    ok = load_scenario(write(tmp_path, "[10.9.0.0/16]", ", secondaryAddress: 10.9.0.11"))
    assert ok.spec.cluster.nodes[0].secondary_address == "10.9.0.11"
    for bad, message in ((", secondaryAddress: 10.9.0", "secondaryAddress: Expected 4 octets"),
                         (", secondaryAddress: 192.168.1.11", "is the node's address")):
        result = CliRunner().invoke(main, ["validate", str(write(tmp_path, "[10.9.0.0/16]",
                                                                 bad))])
        assert result.exit_code == 2 and "scenario.yaml:7:" in result.output, result.output
        assert message in result.output
