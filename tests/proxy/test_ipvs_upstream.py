"""IPVS mode's ipsets and glue, line by line against kube-proxy's
pkg/proxy/ipvs/proxier.go syncProxyRules (kubernetes/kubernetes), for the cases the
golden TestNodePortIPv4 comparison does not cover."""

from __future__ import annotations

from pathlib import Path

import yaml

from .golden_copy import explain_lines, with_spec


def scenario(tmp_path: Path, service: str, **spec: object) -> Path:
    return with_spec(tmp_path, "ipvs", service, **spec)


def explain(path: Path, service: str) -> list[str]:
    return explain_lines(path, "--service", service)


def test_external_ip_of_a_service_without_endpoints_is_in_its_ipset(tmp_path: Path) -> None:
    """The "Capture externalIPs" block inserts the KUBE-EXTERNAL-IP entry and makes the
    virtual server whether or not the Service has endpoints (no hasEndpoints check)."""
    out = explain(scenario(tmp_path, "svc6", externalIPs=["192.168.99.66"]), "svc6")
    assert "TCP  192.168.99.66:80 rr" in out
    assert "add KUBE-EXTERNAL-IP 192.168.99.66,tcp:80" in out
    assert ('-A KUBE-SERVICES -m comment --comment "Kubernetes service external ip + port '
            'for masquerade and filter purpose" -m set --match-set KUBE-EXTERNAL-IP dst,dst '
            "-j KUBE-MARK-MASQ") in out


def test_lb_vip_of_a_service_without_endpoints_is_in_its_ipsets(tmp_path: Path) -> None:
    """Likewise "Capture load-balancer ingress": KUBE-LOAD-BALANCER (and -FW, -SOURCE-CIDR
    for source ranges) hold the VIP with no endpoint behind it."""
    path = scenario(tmp_path, "svc5", loadBalancerSourceRanges=["203.0.113.0/25"])
    data = yaml.safe_load(path.read_text())
    data["manifests"] = [m for m in data["manifests"]
                         if m["metadata"]["name"] != "svc5-1"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = explain(path, "svc5")
    assert "add KUBE-LOAD-BALANCER 5.6.7.8,tcp:80" in out
    assert "add KUBE-LOAD-BALANCER-FW 5.6.7.8,tcp:80" in out
    assert "add KUBE-LOAD-BALANCER-SOURCE-CIDR 5.6.7.8,tcp:80,203.0.113.0/25" in out


def test_itp_local_cluster_ip_falls_back_to_cluster_endpoints_when_external(
        tmp_path: Path) -> None:
    """syncEndpoint(internalNodeLocal): the local endpoints, or, with none on the node,
    the Cluster ones -- which CategorizeEndpoints gives only to a Service that also takes
    external traffic. So a NodePort Service's ClusterIP virtual server keeps its remote
    real servers, and a ClusterIP-only Service's has none."""
    out = explain(scenario(tmp_path, "svc3", internalTrafficPolicy="Local"), "svc3")
    at = out.index("TCP  172.30.0.43:80 rr")
    assert out[at + 1].split()[:2] == ["->", "10.180.0.3:80"]
    out = explain(scenario(tmp_path, "svc1", internalTrafficPolicy="Local"), "svc1")
    at = out.index("TCP  172.30.0.41:80 rr")
    assert not out[at + 1].startswith("  ->")


def test_itp_local_pods_calling_the_cluster_ip_use_the_same_fallback(tmp_path: Path) -> None:
    """The simulated pods on node-1 calling svc3's ClusterIP are served by the remote
    endpoint in IPVS mode, and dropped in iptables mode (no local endpoint: DROP)."""
    from npsim.scenario.loader import load_scenario
    from npsim.sim.engine import Simulation

    path = scenario(tmp_path, "svc3", internalTrafficPolicy="Local")
    for mode, served in (("ipvs", ["10.180.0.3:80"]), ("iptables", [])):
        text = path.read_text().replace("proxyMode: ipvs", f"proxyMode: {mode}")
        path.write_text(text)
        sim = Simulation(load_scenario(path))
        sp = next(s for s in sim.cluster.service_ports if s.service.name == "svc3")
        proxy = sim.proxies[0]
        table, _, _ = proxy.route(proxy.views[sp.index], "pod", True, False)
        assert table.keys == served, mode
