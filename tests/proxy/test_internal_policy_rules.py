"""internalTrafficPolicy: Local in the rule text, held against kube-proxy's syncProxyRules
(pkg/proxy/iptables/proxier.go and pkg/proxy/nftables/proxier.go, kubernetes/kubernetes):
the ClusterIP goes to the internal policy chain (the Local one, KUBE-SVL- / local-), whose
first rule masquerades off-cluster sources; with no local endpoint the ClusterIP is
dropped (``"<svc> has no local endpoints"``) and no Cluster chain is written unless the
Service also takes external traffic (ServicePort.UsesClusterEndpoints)."""

from __future__ import annotations

from pathlib import Path

from .golden_copy import explain_lines, with_spec

SVC1 = "XPGD46QRK7WJZT7O"  # ns1/svc1:p80 (its only endpoint 10.180.0.1 is on node-2)
SVC4 = "4SW47YFZTEDKD3PK"  # ns4/svc4:p80 (10.180.0.4 and .5, both on node-1)


def scenario(tmp_path: Path, service: str, mode: str = "iptables", **spec: object) -> Path:
    return with_spec(tmp_path, mode, service, **spec)


def explain(path: Path, service: str) -> list[str]:
    return explain_lines(path, "--service", service)


def test_iptables_itp_local_without_local_endpoint_drops_the_cluster_ip(
        tmp_path: Path) -> None:
    """proxier.go: !hasInternalEndpoints -> filter KUBE-SERVICES DROP, no nat chain."""
    out = explain(scenario(tmp_path, "svc1", internalTrafficPolicy="Local"), "svc1")
    assert ('-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" '
            "-m tcp -p tcp -d 172.30.0.41 --dport 80 -j DROP") in out
    assert not [line for line in out if SVC1 in line or "KUBE-SEP-" in line]


def test_iptables_itp_local_sends_the_cluster_ip_to_the_svl_chain(tmp_path: Path) -> None:
    """internalTrafficChain = localPolicyChain; the off-cluster masquerade rule sits there;
    a ClusterIP-only Service writes no KUBE-SVC- chain (UsesClusterEndpoints false)."""
    out = explain(scenario(tmp_path, "svc4", type="ClusterIP", externalIPs=[],
                           internalTrafficPolicy="Local"), "svc4")
    svl = f"KUBE-SVL-{SVC4}"
    assert ('-A KUBE-SERVICES -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp '
            f"-d 172.30.0.44 --dport 80 -j {svl}") in out
    assert [line for line in out if line.startswith(f"-A {svl}")] == [
        f'-A {svl} -m comment --comment "ns4/svc4:p80 cluster IP" -m tcp -p tcp '
        "-d 172.30.0.44 --dport 80 ! -s 10.0.0.0/8 -j KUBE-MARK-MASQ",
        f'-A {svl} -m comment --comment "ns4/svc4:p80 -> 10.180.0.4:80" -m statistic --mode '
        "random --probability 0.5000000000 -j KUBE-SEP-UKSFD7AGPMPPLUHC",
        f'-A {svl} -m comment --comment "ns4/svc4:p80 -> 10.180.0.5:80" '
        "-j KUBE-SEP-C6EBXVWJJZMIWKLZ"]
    assert f":KUBE-SVC-{SVC4} - [0:0]" not in out


def test_iptables_itp_local_keeps_the_cluster_chain_for_external_traffic(
        tmp_path: Path) -> None:
    """An externally reachable Service still needs KUBE-SVC- (UsesClusterEndpoints); the
    ClusterIP is dropped on a node without a local endpoint, the NodePort is not."""
    out = explain(scenario(tmp_path, "svc1", type="NodePort", internalTrafficPolicy="Local",
                           ports=[{"name": "p80", "port": 80, "protocol": "TCP",
                                   "nodePort": 3004}]), "svc1")
    assert ('-A KUBE-SERVICES -m comment --comment "ns1/svc1:p80 has no local endpoints" '
            "-m tcp -p tcp -d 172.30.0.41 --dport 80 -j DROP") in out
    svc = f"KUBE-SVC-{SVC1}"
    assert [line for line in out if line.startswith(f"-A {svc}")] == [
        f'-A {svc} -m comment --comment "ns1/svc1:p80 -> 10.180.0.1:80" '
        "-j KUBE-SEP-SXIVWICOYRO3J4NJ"]
    assert (f"-A KUBE-NODEPORTS -m comment --comment ns1/svc1:p80 -m tcp -p tcp --dport 3004 "
            f"-j KUBE-EXT-{SVC1}") in out


def test_nftables_itp_local_without_local_endpoint_drops_the_cluster_ip(
        tmp_path: Path) -> None:
    """nftables proxier.go: internalTrafficFilterVerdict "drop" in no-endpoint-services."""
    out = explain(scenario(tmp_path, "svc1", "nftables", internalTrafficPolicy="Local"),
                  "svc1")
    assert ('add element ip kube-proxy no-endpoint-services { 172.30.0.41 . tcp . 80 '
            'comment "ns1/svc1:p80" : drop }') in out
    assert "add element ip kube-proxy cluster-ips { 172.30.0.41 }" in out
    assert not [line for line in out if "ns1/svc1/tcp/p80" in line]


def test_nftables_itp_local_sends_the_cluster_ip_to_the_local_chain(tmp_path: Path) -> None:
    out = explain(scenario(tmp_path, "svc4", "nftables", type="ClusterIP", externalIPs=[],
                           internalTrafficPolicy="Local"), "svc4")
    local = next(line.split()[-1] for line in out
                 if line.startswith("add chain ip kube-proxy local-"))
    assert ("add element ip kube-proxy service-ips { 172.30.0.44 . tcp . 80 : "
            f"goto {local} }}") in out
    assert [line for line in out if line.startswith(f"add rule ip kube-proxy {local} ")][0] \
        == (f"add rule ip kube-proxy {local} ip daddr 172.30.0.44 ip saddr != 10.0.0.0/8 "
            "jump mark-for-masquerade")
    assert not [line for line in out
                if line.startswith("add chain ip kube-proxy service-") and "ns4/svc4" in line]
