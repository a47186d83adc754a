"""A scenario with a mistake in one section is still checked section by section
(checks.check_partial): those checks must read the sections that did validate, so one
typo does not bring a flood of unrelated problems."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import deployment_manifest

import npsim
from npsim.scenario.problems import ScenarioError


def scenario(**top: Any) -> dict[str, Any]:
    """A NodePort Service asking for 3001 in a cluster whose range is 3000-30000."""
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"type": "NodePort", "selector": {"app": "web"},
                        "ports": [{"port": 80, "nodePort": 3001}]}}
    return {
        "name": "partial",
        "cluster": {"nodes": [{"name": "node-1"}], "serviceNodePortRange": "3000-30000"},
        "manifests": [service, deployment_manifest()],
        "workloads": {"web": {"serviceTime": {"dist": "constant", "value": "1ms"}}},
        "clients": [{"name": "c", "service": "web", "arrival": {"rate": "10/s"}}],
        "run": {"duration": "1s"},
        **top,
    }


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        npsim.scenario_from_dict(data)
    return [f"{p.path}: {p.message}" for p in info.value.problems]


def test_the_scenario_itself_is_valid() -> None:
    assert npsim.scenario_from_dict(scenario()).spec.cluster.service_node_port_range == (
        "3000-30000")


def test_a_typo_elsewhere_keeps_the_cluster_node_port_range() -> None:
    """Only the typo is reported; the nodePort is inside the scenario's own range (it was
    checked against the default 30000-32767 when another section failed)."""
    found = problems(scenario(nosuch=1))
    assert len(found) == 1 and "nosuch" in found[0], found


def test_an_invalid_cluster_section_leaves_the_node_ports_unjudged() -> None:
    """The range is unknown when the cluster section itself does not validate: its own
    problem is reported, not the nodePort against a default range."""
    data = scenario()
    data["cluster"]["proxyMode"] = "foo"
    found = problems(data)
    assert len(found) == 1 and "proxyMode" in found[0], found
