"""A node whose pod CIDR cannot hold the pods placed on it is reported once, with how
many pods did not fit and the CIDR's room, however many pods that is."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_text
from scenario_files import scenario_text

from npsim.cluster.model import build_cluster
from npsim.scenario.problems import ScenarioError

SCENARIO = scenario_text(name="full-cidr", nodes=("{name: n1, zone: a, podCIDR: 10.1.1.0/29}",
                                                 "{name: n2, zone: a, podCIDR: 10.1.2.0/29}"),
                         replicas=2)


def test_one_problem_per_full_node(tmp_path: Path) -> None:
    scenario = load_text(tmp_path, SCENARIO)
    # a scenario changed in Python skips the loader's address checks: 5 pods fit a /29
    scenario.deployments["web"].replicas = 30
    with pytest.raises(ScenarioError) as caught:
        build_cluster(scenario)
    problems = caught.value.problems
    assert [p.path for p in problems] == ["cluster.nodes[0].podCIDR",
                                           "cluster.nodes[1].podCIDR"]
    assert "10.1.1.0/29 of node n1 has room for 5 pods; 10 more did not fit" in \
        problems[0].message
    assert "10.1.2.0/29 of node n2 has room for 5 pods; 10 more did not fit" in \
        problems[1].message
