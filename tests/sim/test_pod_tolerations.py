"""A pod's own NoExecute toleration of the node's ``unreachable`` taint decides when it is
evicted (kube-controller-manager ``pkg/controller/tainteviction``, ``getMinTolerationTime``:
the least ``tolerationSeconds`` of the tolerations matching the taint, 0 at or below 0, for
ever when none of them sets it); the cluster-wide 300 s is only the default the
DefaultTolerationSeconds admission plugin adds to a pod with no such toleration of its own.
npsim read ``tolerationSeconds`` nowhere: a template's 30 s toleration still waited 300 s."""

from __future__ import annotations

from pathlib import Path

import pytest

import npsim
from npsim.cluster.lifecycle import eviction_delay
from npsim.cluster.scheduler import Taint, Toleration
from npsim.scenario.problems import ScenarioError
from npsim.scenario.scenario import Scenario

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
UNREACHABLE = Taint("node.kubernetes.io/unreachable", "", "NoExecute")


def test_eviction_delay_is_upstreams_min_toleration_time() -> None:
    default = 300.0
    own = Toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute", 30.0)
    assert eviction_delay((), UNREACHABLE, default) == 300.0  # admission's default
    assert eviction_delay((own,), UNREACHABLE, default) == 30.0
    forever = Toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute")
    assert eviction_delay((forever,), UNREACHABLE, default) == float("inf")
    assert eviction_delay((forever, own), UNREACHABLE, default) == 30.0  # the least set
    everything = Toleration(operator="Exists")
    assert eviction_delay((everything,), UNREACHABLE, default) == float("inf")
    negative = Toleration("node.kubernetes.io/unreachable", "Exists", "", "NoExecute", -5.0)
    assert eviction_delay((negative, own), UNREACHABLE, default) == 0.0
    other = Toleration("dedicated", "Equal", "web", "NoExecute", 10.0)
    assert eviction_delay((other,), UNREACHABLE, default) == 300.0  # not this taint


def _node_failure(seconds: int | None) -> Scenario:
    scenario = npsim.load_scenario(SCENARIOS / "node-failure.yaml")
    toleration = {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                  "effect": "NoExecute"}
    if seconds is not None:
        toleration["tolerationSeconds"] = seconds
    return scenario.with_changes({"run.duration": "200s",
                                  "deployments.nginx.template.spec.tolerations": [toleration]})


def _evicted(result: npsim.Result) -> list[float]:
    events = result.events
    return events.loc[events["kind"] == "pod_evicted", "time"].round(2).tolist()


def test_a_pods_own_toleration_seconds_set_its_eviction() -> None:
    """node-failure.yaml: node-2 tainted at 115.03 s; nginx-1 tolerating 30 s goes at
    145.03 s and is replaced, instead of at 415.03 s."""
    result = npsim.run(_node_failure(30))
    assert _evicted(result) == [145.03]
    events = result.events
    assert (events["kind"] == "pod_scheduled").sum() == 1
    assert _evicted(npsim.run(_node_failure(None))) == []  # tolerates for ever


def test_toleration_seconds_are_checked_and_written_back() -> None:
    scenario = _node_failure(30)
    assert scenario.deployments["nginx"].toleration_seconds == (30.0,)
    resolved = scenario.to_dict()
    deployment = next(m for m in resolved["manifests"] if m["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["tolerations"][0]["tolerationSeconds"] == 30
    with pytest.raises(ScenarioError, match="effect must be 'NoExecute' when "
                                            "`tolerationSeconds` is set"):
        npsim.load_scenario(SCENARIOS / "node-failure.yaml").with_changes(
            {"deployments.nginx.template.spec.tolerations": [
                {"key": "a", "operator": "Exists", "effect": "NoSchedule",
                 "tolerationSeconds": 30}]})
    with pytest.raises(ScenarioError, match="tolerationSeconds"):
        npsim.load_scenario(SCENARIOS / "node-failure.yaml").with_changes(
            {"deployments.nginx.template.spec.tolerations": [
                {"key": "a", "operator": "Exists", "effect": "NoExecute",
                 "tolerationSeconds": "soon"}]})
