"""`npsim explain` against kube-proxy's own golden output.

kube-proxy's TestOverallIPTablesRules (pkg/proxy/iptables/proxier_test.go) builds six
Services (ClusterIP, LoadBalancer + Local with an external IP, NodePort, an external IP,
LoadBalancer with source ranges and affinity, one with no endpoints) and checks the whole
``iptables-restore`` input. ``golden/overall.yaml`` rebuilds them; ``golden/*.expected``
holds the test's expected text. As kube-proxy's own helper does (assertIPTablesRulesEqual
sorts chains), the comparison is per table: the same chains declared, and in every chain
the same rules in the same order.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from npsim.cli import main

GOLDEN = Path(__file__).parent / "golden"


def by_chain(text: str) -> dict[str, tuple[set[str], dict[str, list[str]]]]:
    """table -> (declared chains, chain -> its rules in order)."""
    tables: dict[str, tuple[set[str], dict[str, list[str]]]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], (set(), {}))
        elif current is None or line.startswith("#") or not line.strip():
            continue
        elif line.startswith(":"):
            current[0].add(line.split()[0][1:])
        elif line.startswith("-A "):
            current[1].setdefault(line.split()[1], []).append(line)
    return tables


def explain_text(*args: str) -> str:
    result = CliRunner().invoke(main, ["explain", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_iptables_matches_kube_proxys_overall_golden_test() -> None:
    ours = by_chain(explain_text(str(GOLDEN / "overall.yaml"), "--node", "node-1"))
    theirs = by_chain((GOLDEN / "iptables_overall.expected").read_text())
    assert set(ours) == set(theirs) == {"filter", "nat"}
    for table in ("filter", "nat"):
        assert ours[table][0] == theirs[table][0], table
        assert ours[table][1] == theirs[table][1], table


def test_the_golden_counts_every_rule_of_the_test() -> None:
    """Guards the comparison itself: 10 filter and 55 nat rules, as the test writes."""
    theirs = by_chain((GOLDEN / "iptables_overall.expected").read_text())
    assert sum(map(len, theirs["filter"][1].values())) == 10
    assert sum(map(len, theirs["nat"][1].values())) == 55


def nft_parts(text: str) -> tuple[dict[str, list[str]], Counter]:
    """nftables: each chain's rules in order, and every other line (tables, sets, maps,
    chains, elements) as a multiset, the order kube-proxy's fake dump does not fix."""
    rules: dict[str, list[str]] = {}
    others: Counter = Counter()
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("add rule ip kube-proxy "):
            rules.setdefault(line.split()[4], []).append(line)
        else:
            others[line] += 1
    return rules, others


def test_nftables_matches_kube_proxys_overall_golden_test(tmp_path: Path) -> None:
    data = yaml.safe_load((GOLDEN / "overall.yaml").read_text())
    data["cluster"].update(proxyMode="nftables", serviceCIDR="172.30.0.0/16")
    path = tmp_path / "overall-nftables.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out = explain_text(str(path), "--node", "node-1")
    ours = nft_parts(out.split("\n", 1)[1])  # after npsim's "# node" heading
    theirs = nft_parts((GOLDEN / "nftables_overall.expected").read_text())
    assert ours[0] == theirs[0]
    assert ours[1] == theirs[1]
    assert sum(map(len, theirs[0].values())) == 57 and sum(theirs[1].values()) == 65


IPVS_CASES = json.loads((GOLDEN / "ipvs_nodeport.json").read_text())["cases"]


def ipvs_case(tmp_path: Path, case: dict) -> Path:
    """kube-proxy's fake node (100.101.102.103) as node-1; endpoints without a nodeName
    on node-2; ClusterIP 10.20.30.41, nodePort 3001. The endpoints (10.180.0.1,
    10.180.1.1) lie outside the nodes' pod CIDRs: inside, each would be a cni0 bridge's
    address, which no pod can have."""
    proto = case["protocol"]
    data = {
        "name": "kube-proxy-ipvs-nodeport",
        "cluster": {"proxyMode": "ipvs", "serviceNodePortRange": "3000-3010",
                    "nodes": [{"name": "node-1", "address": "100.101.102.103",
                               "podCIDR": "10.181.0.0/24"},
                              {"name": "node-2", "address": "100.101.102.200",
                               "podCIDR": "10.181.1.0/24"}]},
        "manifests": [{"apiVersion": "v1", "kind": "Service",
                       "metadata": {"name": "svc1", "namespace": "ns1"},
                       "spec": {"type": "NodePort", "clusterIP": "10.20.30.41",
                                **({"externalTrafficPolicy": "Local"}
                                   if case["local"] else {}),
                                "ports": [{"name": "p80", "port": 80, "protocol": proto,
                                           "nodePort": 3001}]}}],
    }
    if case["endpoints"]:
        data["manifests"].append({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "svc1-1", "namespace": "ns1",
                         "labels": {"kubernetes.io/service-name": "svc1"}},
            "addressType": "IPv4",
            "ports": [{"name": "p80", "port": 80, "protocol": proto}],
            "endpoints": [{"addresses": [ip], "nodeName": node}
                          for ip, node in case["endpoints"]]})
        data["workloads"] = {"backends": {
            "namespace": "ns1", "serviceTime": {"dist": "constant", "value": "1ms"},
            "pods": [{"node": node, "ip": ip} for ip, node in case["endpoints"]]}}
    else:  # a Deployment scaled to zero: the Service selects no pod
        data["manifests"][0]["spec"]["selector"] = {"app": "svc1"}
        data["manifests"].append({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "svc1", "namespace": "ns1"},
            "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "svc1"}},
                     "template": {"metadata": {"labels": {"app": "svc1"}},
                                  "spec": {"containers": [{"name": "app"}]}}}})
        data["workloads"] = {"svc1": {"serviceTime": {"dist": "constant", "value": "1ms"}}}
    data["clients"] = [{"name": "c", "service": "svc1", "arrival": {"rate": "1/s"}}]
    data["run"] = {"duration": "1s"}
    path = tmp_path / "ipvs.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def ipvs_parts(out: str) -> tuple[dict[str, list[str]], dict[str, list[str]],
                                  dict[str, list[list[str]]]]:
    """ipvsadm's virtual servers and real servers, ipset members, and each iptables
    chain's (target, match set) pairs in order (both tables, nat first as npsim prints
    it after filter: the pairs are gathered per chain name as kube-proxy's checkIptables
    reads them)."""
    servers: dict[str, list[str]] = {}
    sets: dict[str, list[str]] = {}
    chains: dict[str, list[list[str]]] = {}
    current = None
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] in ("TCP", "UDP", "SCTP"):
            current = f"{words[0]} {words[1]}"
            servers[current] = []
        elif line.startswith("  -> ") and current is not None:
            servers[current].append(words[1])
        elif line.startswith("add ") and len(words) == 3:
            sets.setdefault(words[1], []).append(words[2])
        elif line.startswith("-A "):
            match = words[words.index("--match-set") + 1] if "--match-set" in words else ""
            chains.setdefault(words[1], []).append([words[words.index("-j") + 1], match])
    return servers, sets, chains


@pytest.mark.parametrize("case", IPVS_CASES, ids=[c["name"] for c in IPVS_CASES])
def test_ipvs_matches_kube_proxys_node_port_tests(tmp_path: Path, case: dict) -> None:
    out = explain_text(str(ipvs_case(tmp_path, case)), "--node", "node-1")
    servers, sets, chains = ipvs_parts(out)
    # npsim's node also has its pod bridge (cni0, 10.181.0.1) as a local address, which
    # kube-proxy binds NodePorts to as well; the fake proxier knows only the node IP
    bridge = {k for k in servers if k.split()[1].startswith("10.181.0.1:")}
    assert {k: v for k, v in servers.items() if k not in bridge} == case["virtual_servers"]
    for name, members in case["ipsets"].items():
        ours = [m for m in sets.get(name, []) if not m.startswith("10.181.0.1,")]
        assert sorted(ours) == sorted(members), name
    for chain, expected in case["chains"].items():
        # checkIptables: every expected (target, set) pair is among the chain's rules
        assert all(pair in chains.get(chain, []) for pair in expected), (chain, chains)
