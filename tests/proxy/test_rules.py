"""Each mode's rule text (npsim/proxy/rules): ``npsim explain`` finds it by the node's own
kube-proxy mode. The text itself is checked against kube-proxy's in tests/test_explain.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from npsim.explain import render, trace
from npsim.proxy import MODES
from npsim.scenario.loader import load_scenario
from npsim.sim.engine import Simulation

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
RULES_PACKAGE = ROOT / "npsim" / "proxy" / "rules"


@pytest.mark.parametrize("mode", sorted(MODES))
def test_every_kube_proxy_mode_carries_its_own_rule_text(mode: str) -> None:
    """The mode object owns its text: its class's ``rules`` come from its own module."""
    rules = MODES[mode].rules
    assert rules.__class__.__name__ == "ModeRules"
    assert rules is __import__(f"npsim.proxy.rules.{mode}", fromlist=["RULES"]).RULES


def test_a_node_in_another_mode_shows_its_own_rules_and_walk() -> None:
    """One userspace node among iptables nodes: its kube-proxy's list, not iptables'."""
    scenario = load_scenario(str(QUICKSTART)).with_changes(
        {"cluster.nodes[1].proxyMode": "userspace"})
    sim = Simulation(scenario)
    first, second = sim.proxies[0], sim.proxies[1]
    assert (first.mode, second.mode) == ("iptables", "userspace")
    assert render(first, sim.cluster).startswith("*filter\n")
    assert render(second, sim.cluster).startswith(
        f"# kube-proxy (userspace) on {second.node.name}: round robin")
    sp = sim.cluster.service_ports[0]
    walk = list(trace(second, sim.cluster, sp, 0xCB007107, 40000))
    assert walk[1] == "REDIRECT to kube-proxy's proxy port (the kube-proxy process)"
    assert "round robin picks" in walk[2]
    assert "the pod sees kube-proxy's node address" in walk[3]


@pytest.mark.parametrize("path", sorted(RULES_PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_the_rules_stand_on_the_cluster_model_and_the_proxies_only(path: Path) -> None:
    """The text is read off the proxies' tables: explain -> rules -> proxies and the
    cluster model, never back up to the simulation, the command or the results."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("npsim"):
            imported.add(node.module)
        elif isinstance(node, ast.Import):
            imported.update(a.name for a in node.names if a.name.startswith("npsim"))
    assert all(m.startswith(("npsim.cluster.", "npsim.proxy.")) for m in imported), imported
