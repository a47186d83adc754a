"""scenario/ in layers: what each part may import, and the seams between the parts
(the kind tables and their parsers, the reader a Scenario keeps, the checks)."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
import yaml

import npsim
from npsim.scenario.kinds import TABLES, not_modelled
from npsim.scenario.loader import scenario_from_dict
from npsim.scenario.manifests import PARSERS
from npsim.scenario.problems import ScenarioError
from npsim.scenario.unique import repeated, repeats

ROOT = Path(__file__).resolve().parents[2]
SCENARIO_PACKAGE = ROOT / "npsim" / "scenario"
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
# what the scenario side stands on: the leaf modules below it, nothing of the model,
# the simulation or the results above it
ALLOWED = {"npsim.scenario", "npsim.dists", "npsim.units", "npsim.streams", "npsim.outcomes"}


def imported_modules(path: Path) -> set[str]:
    """Every npsim module ``path`` imports, type-only and function-level ones too."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("npsim"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("npsim"))
    return out


@pytest.mark.parametrize("path", sorted(SCENARIO_PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_the_scenario_side_imports_nothing_above_it(path: Path) -> None:
    above = {m for m in imported_modules(path)
             if not any(m == a or m.startswith(a + ".") for a in ALLOWED)}
    assert not above, f"{path.name} imports {sorted(above)}"


def test_every_kind_read_has_one_table_and_one_parser() -> None:
    assert set(TABLES) == set(PARSERS)


def test_a_kinds_table_names_what_is_not_modelled() -> None:
    doc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "uid": "x"},
           "spec": {"ports": [{"port": 80, "weight": 3}], "externalName": "a"}}
    assert not_modelled(doc, "Service") == [["metadata", "uid"], ["spec", "ports", 0, "weight"],
                                             ["spec", "externalName"]]


def test_repeats_name_each_later_occurrence_and_repeated_each_name_once() -> None:
    assert list(repeats(["a", "b", "a", "a", "c", "b"])) == [(2, "a"), (3, "a"), (5, "b")]
    assert repeated(["b", "a", "b", "a", "a"]) == ["a", "b"]


def test_a_scenario_sent_to_another_process_still_takes_changes() -> None:
    """A sweep pickles scenarios to its workers: the reader a Scenario keeps for
    ``with_changes`` (the loader's) goes with it."""
    scenario = pickle.loads(pickle.dumps(npsim.load_scenario(QUICKSTART)))
    changed = scenario.with_changes({"cluster.proxyMode": "ipvs"})
    assert changed.spec.cluster.proxy_mode == "ipvs"
    assert scenario.spec.cluster.proxy_mode != "ipvs"


def test_a_firewall_rule_is_read_by_a_check_at_its_line() -> None:
    data = yaml.safe_load(QUICKSTART.read_text())
    data["cluster"]["firewall"] = {"iptables": "iptables -A INPUT -j MARK\n"}
    with pytest.raises(ScenarioError) as refused:
        scenario_from_dict(data, QUICKSTART.parent)
    assert [p.path for p in refused.value.problems] == ["cluster.firewall"]
    assert "iptables line 1: target 'MARK'" in refused.value.problems[0].message
    # and so when another section is wrong too (the checks of what did validate)
    data["run"]["bogus"] = 1
    with pytest.raises(ScenarioError) as refused:
        scenario_from_dict(data, QUICKSTART.parent)
    assert [p.path for p in refused.value.problems] == ["cluster.firewall", "run.bogus"]
