"""iptables mode's text, line by line against kube-proxy's pkg/proxy/iptables/proxier.go
(kubernetes/kubernetes), for what the golden overall test does not cover."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .golden_copy import GOLDEN, explain_lines
from .helpers import scenario_dict


def explain(path: Path, *args: str) -> list[str]:
    return explain_lines(path, *args)


def test_hooks_are_every_jump_kube_proxy_inserts() -> None:
    """iptablesJumpChains (the three KUBE-PROXY-FIREWALL jumps "kubernetes load balancer
    firewall" included) then iptablesKubeletJumpChains (INPUT/OUTPUT -> KUBE-FIREWALL)."""
    hooks = [line.removeprefix("# ") for line in explain(GOLDEN)
             if line.startswith("# -t ")]
    lb = ('-m conntrack --ctstate NEW -m comment --comment "kubernetes load balancer '
          'firewall" -j KUBE-PROXY-FIREWALL')
    assert [" ".join(h.split()) for h in hooks] == [" ".join(h.split()) for h in [
        '-t filter INPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes '
        'externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        '-t filter FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes '
        'externally-visible service portals" -j KUBE-EXTERNAL-SERVICES',
        '-t filter INPUT -m comment --comment "kubernetes health check service ports" '
        "-j KUBE-NODEPORTS",
        '-t filter FORWARD -m conntrack --ctstate NEW -m comment --comment "kubernetes '
        'service portals" -j KUBE-SERVICES',
        '-t filter OUTPUT -m conntrack --ctstate NEW -m comment --comment "kubernetes '
        'service portals" -j KUBE-SERVICES',
        '-t filter FORWARD -m comment --comment "kubernetes forwarding rules" '
        "-j KUBE-FORWARD",
        f"-t filter INPUT {lb}", f"-t filter OUTPUT {lb}", f"-t filter FORWARD {lb}",
        '-t nat OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
        '-t nat PREROUTING -m comment --comment "kubernetes service portals" '
        "-j KUBE-SERVICES",
        '-t nat POSTROUTING -m comment --comment "kubernetes postrouting rules" '
        "-j KUBE-POSTROUTING",
        "-t filter INPUT -j KUBE-FIREWALL", "-t filter OUTPUT -j KUBE-FIREWALL"]]


def test_walk_counts_the_kube_services_rules_a_node_port_packet_passes() -> None:
    """A NodePort packet meets every earlier nat KUBE-SERVICES rule before the last
    ("kubernetes service nodeports"): one per ClusterIP with internal endpoints, one per
    external IP and LB IP of a Service with endpoints -- 9 in kube-proxy's own
    TestOverallIPTablesRules, not the 6 Service ports."""
    full = explain(GOLDEN)
    assert len([line for line in full if line.startswith("-A KUBE-SERVICES -m comment")
                and "REJECT" not in line]) == 10  # nat: 9, then the NodePort hook
    out = explain(GOLDEN, "--service", "svc3", "--trace", "203.0.113.7")
    step = next(line for line in out if line.startswith("nat PREROUTING -> KUBE-SERVICES"))
    assert step.startswith("nat PREROUTING -> KUBE-SERVICES: 9 rules compared"), step


@pytest.mark.parametrize(("replicas", "large"), [(1000, False), (1001, True)])
def test_large_cluster_mode_drops_the_endpoint_comments(tmp_path: Path, replicas: int,
                                                        large: bool) -> None:
    """Over largeClusterEndpointsThreshold (1000) endpoints kube-proxy leaves the comments
    off the KUBE-SEP- rules and the KUBE-SVC- load-balancing rules
    (appendServiceCommentLocked); the other rules keep theirs."""
    path = tmp_path / "large.yaml"
    path.write_text(yaml.safe_dump(scenario_dict(nodes=5, replicas=replicas, requests=1)))
    out = explain(path)
    sep = [line for line in out if line.startswith("-A KUBE-SEP-")]
    lb = [line for line in out if line.startswith("-A KUBE-SVC-") and "KUBE-SEP-" in line]
    assert len(sep) == 2 * replicas and len(lb) == replicas
    assert all(("-m comment" in line) != large for line in sep + lb)
    if large:  # "-A KUBE-SEP-X -s IP -j KUBE-MARK-MASQ", "-A KUBE-SEP-X -m tcp -p tcp -j DNAT"
        assert sep[0].split()[2] == "-s" and sep[1].split()[2:4] == ["-m", "tcp"]
    assert any('--comment "default/web cluster IP"' in line for line in out)
