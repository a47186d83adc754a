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

from collections import Counter
from pathlib import Path

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
