"""externalIPs, LoadBalancer ingress IPs, source ranges and kube-proxy's own flags in the
rule text, and the API server's checks on them (pkg/apis/core/validation)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from npsim.cli import main
from npsim.scenario.loader import load_scenario
from npsim.scenario.problems import ScenarioError

GOLDEN = Path(__file__).parent / "golden" / "overall.yaml"


def variant(tmp_path: Path, edit) -> Path:  # noqa: ANN001
    data = yaml.safe_load(GOLDEN.read_text())
    edit(data)
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def explain(path: Path, *args: str) -> str:
    result = CliRunner().invoke(main, ["explain", str(path), "--node", "node-1", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def service(data: dict, name: str) -> dict:
    return next(m for m in data["manifests"] if m["metadata"]["name"] == name)


def test_a_cluster_ip_only_service_has_no_ext_chain(tmp_path: Path) -> None:
    """usesExternalTrafficChain needs a NodePort, an external IP or an LB IP (proxier.go)."""
    out = explain(GOLDEN)
    svc1 = "XPGD46QRK7WJZT7O"  # ns1/svc1:p80
    assert f":KUBE-SVC-{svc1}" in out and f"KUBE-EXT-{svc1}" not in out


def test_without_localhost_nodeports_the_guard_and_the_counter_go(tmp_path: Path) -> None:
    path = variant(tmp_path, lambda d: d["cluster"]["kubeProxy"].update(
        localhostNodePorts=False))
    out = explain(path)
    # the restore input loses the chain; the hooks to it stay (kube-proxy ensures the
    # kubelet's INPUT/OUTPUT -> KUBE-FIREWALL jumps whatever the flag, proxier.go)
    restore = out.split("# hooks", 1)[0]
    assert "KUBE-FIREWALL" not in restore and "localhost_nps_accepted_pkts" not in out
    assert ("this must be the last rule in this chain\" -m addrtype --dst-type LOCAL "
            "! -d 127.0.0.0/8 -j KUBE-NODEPORTS") in out


def test_nfacct_and_random_fully_follow_the_kube_proxy_settings(tmp_path: Path) -> None:
    path = variant(tmp_path, lambda d: d["cluster"]["kubeProxy"].update(
        nfacct=False, masqueradeRandomFully=True))
    out = explain(path)
    assert "nfacct" not in out
    assert "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP" in out
    assert "-j MASQUERADE --random-fully" in out


def test_source_ranges_holding_the_node_let_the_lb_ip_loop_back(tmp_path: Path) -> None:
    """allowFromNode: a range holding this node's IP adds ``-s <LB IP>`` (proxier.go)."""
    path = variant(tmp_path, lambda d: service(d, "svc5")["spec"].update(
        loadBalancerSourceRanges=["203.0.113.0/25", "192.168.0.0/24"]))
    out = explain(path)
    fw = '-A KUBE-FW-NUKIZ6OKUXPJNT4C -m comment --comment "ns5/svc5:p80 loadbalancer IP"'
    assert [line for line in out.splitlines() if line.startswith(fw)] == [
        f"{fw} -s 203.0.113.0/25 -j KUBE-EXT-NUKIZ6OKUXPJNT4C",
        f"{fw} -s 192.168.0.0/24 -j KUBE-EXT-NUKIZ6OKUXPJNT4C",
        f"{fw} -s 5.6.7.8 -j KUBE-EXT-NUKIZ6OKUXPJNT4C"]


def test_ipvs_lets_localhost_pass_first(tmp_path: Path) -> None:
    path = variant(tmp_path, lambda d: d["cluster"].update(proxyMode="ipvs"))
    nat = explain(path).split("*nat", 1)[1].splitlines()
    rules = [line for line in nat if line.startswith("-A KUBE-SERVICES")]
    assert rules[0] == "-A KUBE-SERVICES -s 127.0.0.0/8 -j RETURN"


@pytest.mark.parametrize(("edit", "where", "message"), [
    (lambda s: s["spec"].update(externalIPs=["300.1.2.3"]), "spec.externalIPs[0]",
     'Invalid value: "300.1.2.3": must be a valid IP address'),
    (lambda s: s["spec"].update(externalIPs=["127.0.0.1"]), "spec.externalIPs[0]",
     "may not be in the loopback range"),
    (lambda s: s["spec"].update(type="NodePort", loadBalancerSourceRanges=["10.0.0.0/8"]),
     "spec.loadBalancerSourceRanges",
     "Forbidden: may only be used when `type` is 'LoadBalancer'"),
    (lambda s: s["spec"].update(type="LoadBalancer", loadBalancerSourceRanges=["nope"]),
     "spec.loadBalancerSourceRanges[0]", 'Invalid value: "nope": must be a valid CIDR'),
    (lambda s: s.update(status={"loadBalancer": {"ingress": [{"ip": "1.2.3.4",
                                                              "ipMode": "Direct"}]}}),
     "status.loadBalancer.ingress[0].ipMode", 'Unsupported value: "Direct"'),
])
def test_bad_external_addresses_are_placed_errors(tmp_path: Path, edit, where: str,  # noqa: ANN001
                                                  message: str) -> None:
    path = variant(tmp_path, lambda d: edit(service(d, "svc3")))
    with pytest.raises(ScenarioError) as info:
        load_scenario(path)
    report = info.value.report()
    assert f"manifests[2].{where}: " in report and message in report, report


def test_proxy_mode_ingress_ips_are_not_vips(tmp_path: Path) -> None:
    """ipMode Proxy: the balancer does not deliver to the VIP, kube-proxy writes no rule
    for it (KEP-1860, newBaseServiceInfo)."""
    path = variant(tmp_path, lambda d: service(d, "svc2")["status"]["loadBalancer"][
        "ingress"][0].update(ipMode="Proxy"))
    assert "1.2.3.4" not in explain(path)


def test_ipvs_fills_the_external_address_sets_and_checks_source_ranges(tmp_path: Path
                                                                       ) -> None:
    """IPVS mode (pkg/proxy/ipvs/proxier.go, ipsetInfo and ipsetWithIptablesChain): a
    virtual server per external address, the Local sets, the LB firewall set with its
    source CIDRs, and KUBE-SOURCE-RANGES-FIREWALL's RETURN before its DROP."""
    path = variant(tmp_path, lambda d: d["cluster"].update(proxyMode="ipvs"))
    out = explain(path)
    for line in ("TCP  192.168.99.22:80 rr", "TCP  1.2.3.4:80 rr",
                 "TCP  5.6.7.8:80 rr persistent 10800", "TCP  192.168.99.33:80 rr",
                 "add KUBE-EXTERNAL-IP-LOCAL 192.168.99.22,tcp:80",
                 "add KUBE-EXTERNAL-IP 192.168.99.33,tcp:80",
                 "add KUBE-LOAD-BALANCER-LOCAL 1.2.3.4,tcp:80",
                 "add KUBE-LOAD-BALANCER-FW 5.6.7.8,tcp:80",
                 "add KUBE-LOAD-BALANCER-SOURCE-CIDR 5.6.7.8,tcp:80,203.0.113.0/25"):
        assert line in out.splitlines(), line
    firewall = [line for line in out.splitlines()
                if line.startswith("-A KUBE-SOURCE-RANGES-FIREWALL")]
    assert firewall[-1] == "-A KUBE-SOURCE-RANGES-FIREWALL -j DROP"
    assert "--match-set KUBE-LOAD-BALANCER-SOURCE-CIDR dst,dst,src -j RETURN" in firewall[0]
