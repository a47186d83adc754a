"""nftables mode's transaction, line by line against kube-proxy's
pkg/proxy/nftables/proxier.go syncProxyRules (kubernetes/kubernetes), for what the golden
TestOverallNFTablesRules comparison does not cover."""

from __future__ import annotations

from pathlib import Path

from .golden_copy import explain_lines, golden_copy, service

T = "add element ip kube-proxy"


def scenario(tmp_path: Path, edit) -> Path:  # noqa: ANN001
    return golden_copy(tmp_path, "nftables", edit)


def explain(path: Path, service_name: str) -> list[str]:
    return explain_lines(path, "--service", service_name)


def test_a_two_port_service_adds_its_cluster_ip_once(tmp_path: Path) -> None:
    """clusterIPs.ensureElem: one cluster-ips element per address, whatever the ports."""
    def edit(data: dict) -> None:
        service(data, "svc3")["spec"]["ports"].append(
            {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 3053})
        data["manifests"].append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "svc3-2", "namespace": "ns3",
                         "labels": {"kubernetes.io/service-name": "svc3"}},
            "addressType": "IPv4", "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}],
            "endpoints": [{"addresses": ["10.180.0.3"], "nodeName": "node-2"}]})
    out = explain(scenario(tmp_path, edit), "svc3")
    assert out.count(f"{T} cluster-ips {{ 172.30.0.43 }}") == 1
    assert f"{T} service-ips {{ 172.30.0.43 . udp . 53 : goto service-" in " ".join(out)


def test_source_ranges_guard_a_vip_without_endpoints(tmp_path: Path) -> None:
    """usesFWChain needs LB VIPs and source ranges only (no hasEndpoints): the firewall
    chain and its firewall-ips element are written, beside the VIP's reject."""
    def edit(data: dict) -> None:
        data["manifests"] = [m for m in data["manifests"] if m["metadata"]["name"] != "svc5-1"]
        service(data, "svc5")["spec"]["loadBalancerSourceRanges"] = ["203.0.113.0/25"]
    out = explain(scenario(tmp_path, edit), "svc5")
    fw = next(line.split()[-1] for line in out
              if line.startswith("add chain ip kube-proxy firewall-") and "ns5/svc5" in line)
    assert f"add rule ip kube-proxy {fw} ip saddr != {{ 203.0.113.0/25 }} drop" in out
    assert f"{T} firewall-ips {{ 5.6.7.8 . tcp . 80 : goto {fw} }}" in out
    assert (f'{T} no-endpoint-services {{ 5.6.7.8 . tcp . 80 comment "ns5/svc5:p80" : '
            "goto reject-chain }") in out
